"""The work of each stage as plain functions: arrays and tables in, arrays and tables out. No Dask."""


class InputError(ValueError):
    """Bad input the user must fix (corrupt image, wrong checkpoint ...). The message is one line."""
