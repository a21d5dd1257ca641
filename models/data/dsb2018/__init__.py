"""The real DSB 2018 nuclei image and mask (see PROVENANCE.md); a package so the TIFFs ship as package data."""
