"""layerdrift.analyses"""
