"""Tools built on the hsi_gdal API: the ``hsic`` command line (cli), benchmarks (bench, baselines),
folder batches on Dask (batch) and the HySpecNet-11k training data (training_data). The API itself
never imports them."""
