"""The one error a data set raises."""


class DatasetError(ValueError):
    """A dataset file that is missing, corrupt, unsafe or fails its checksum."""
