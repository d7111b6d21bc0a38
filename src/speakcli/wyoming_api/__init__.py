"""Wyoming (Home Assistant's voice protocol) over the shared gateway; only this package imports `wyoming`."""
