"""The spec's clustering script: the same command as `photodb cluster`."""

from photodb.cli_cluster import main

if __name__ == "__main__":
    main()
