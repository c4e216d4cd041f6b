"""I/O of the api service: MongoDB repositories, upload storage, FITS inspection, archives."""
