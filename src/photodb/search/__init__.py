"""`photodb search`: composable filters over photos, built into one parameterised statement."""
