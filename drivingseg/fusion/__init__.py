"""drivingseg.fusion."""

__all__: list[str] = []
