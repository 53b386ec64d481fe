#!/bin/bash
# Start a Ray cluster on a SLURM allocation and run one layerdrift config on it.
#
#   sbatch examples/cluster/slurm.sh examples/patching-and-vectors.toml /shared/runs/patching
#
# Written from Ray's "Deploying on Slurm" guide: one `ray start --head` on the first node, one `ray start
# --address` per other node (each a blocking srun step holding the whole node), then the driver on the head
# node. The run folder must be on a file system every node sees (Lustre, GPFS, NFS): capture tasks write their
# batches straight into it, and only the driver writes the manifest.
#SBATCH --job-name=layerdrift
#SBATCH --nodes=3
#SBATCH --exclusive
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --output=layerdrift-%j.log
set -euo pipefail

config=${1:?usage: sbatch slurm.sh CONFIG RUN_FOLDER}
out=${2:?usage: sbatch slurm.sh CONFIG RUN_FOLDER}

# Load the site's modules or activate the environment that has `pip install "layerdrift[ray]"` here, e.g.
# source "$HOME/venvs/layerdrift/bin/activate"

nodes=$(scontrol show hostnames "$SLURM_JOB_NODELIST")
nodes_array=($nodes)
head_node=${nodes_array[0]}
head_node_ip=$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address | awk '{print $1}')
port=6379
export RAY_ADDRESS="$head_node_ip:$port"

echo "starting the Ray head on $head_node ($RAY_ADDRESS)"
srun --nodes=1 --ntasks=1 -w "$head_node" \
  ray start --head --node-ip-address="$head_node_ip" --port=$port \
  --num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus="${SLURM_GPUS_PER_TASK:-0}" --block &
sleep 10

for ((i = 1; i < SLURM_JOB_NUM_NODES; i++)); do
  echo "starting Ray worker $i on ${nodes_array[$i]}"
  srun --nodes=1 --ntasks=1 -w "${nodes_array[$i]}" \
    ray start --address "$RAY_ADDRESS" \
    --num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus="${SLURM_GPUS_PER_TASK:-0}" --block &
  sleep 5
done

# The driver: its timed stage lines go to the job log; a killed job resumes from its finished batches when
# submitted again with the same config and run folder.
layerdrift run --config "$config" --out "$out" --engine ray --address "$RAY_ADDRESS"
