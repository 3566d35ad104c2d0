"""Array transforms shared by DataModules and inference objects (MRI onto a grid, video in time and space)."""
