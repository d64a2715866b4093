#!/bin/sh
# gridrun: experiment spiffy-sunfish-821-exp3 of run spiffy-sunfish-821
export GRID_HOME=/home/u/.grid
exec /opt/venv/bin/python -S -I -c 'import gc, sys; gc.disable(); p = sys.argv.pop(1); sys.path += [p + "/backends/slurm", p + "/backends/local", p + "/datastores", p + "/project"]; import runner; runner.run(sys.argv[1:])' /opt/venv/lib/python3.11/site-packages/gridrun /home/u/.grid/experiments/spiffy-sunfish-821-exp3/slurm-plan.bin
