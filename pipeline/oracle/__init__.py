"""The oracles of section 5.2: the classifier network and its fitting, scoring and loading."""
