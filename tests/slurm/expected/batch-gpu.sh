#!/bin/sh
# gridrun: experiment spiffy-sunfish-821-exp3 of run spiffy-sunfish-821
export GRID_HOME=/home/u/.grid
exec /opt/venv/bin/python -m gridrun.backends.slurm.task /home/u/.grid/experiments/spiffy-sunfish-821-exp3/slurm-job.json
