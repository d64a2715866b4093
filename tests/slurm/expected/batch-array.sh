#!/bin/sh
# gridrun: experiments of run spiffy-sunfish-821, one per array task
export GRID_HOME=/home/u/.grid
exec /opt/venv/bin/python -m gridrun.backends.slurm.task --manifest /home/u/.grid/runs/spiffy-sunfish-821/slurm-array-x.txt
