"""drivingseg.node."""

__all__: list[str] = []
