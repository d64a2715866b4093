#!/bin/sh
# gridrun: experiments of run spiffy-sunfish-821, one per array task
export GRID_HOME=/home/u/.grid
exec /opt/venv/bin/python -S -I -c 'import gc, sys; gc.disable(); p = sys.argv.pop(1); sys.path += [p + "/backends/slurm", p + "/backends/local", p + "/datastores", p + "/project"]; import runner; runner.run(sys.argv[1:])' /opt/venv/lib/python3.11/site-packages/gridrun --manifest /home/u/.grid/runs/spiffy-sunfish-821/slurm-array-x.txt
