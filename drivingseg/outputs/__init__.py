"""drivingseg.outputs."""

__all__: list[str] = []
