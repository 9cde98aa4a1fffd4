import sys

from pipeline.cli import main

# The guard matters: Dask's LocalCluster spawns worker processes that re-import __main__.
if __name__ == "__main__":
    sys.exit(main())
