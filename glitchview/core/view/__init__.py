"""Qt-free data for the views: colourings, spatial index, selections, prepared view data."""
