"""layerdrift.dashboards"""
