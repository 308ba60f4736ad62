"""Market data: sources (bundled, files, S3, yfinance), the bar-file reader and its error, incremental ingest.

Nothing is imported here (importing the package stays light); its public modules:

- ``archive``: The append-only archive of a source: one parquet per source (and location), merged with each fetch
- ``files``: Bars from CSV/Parquet files: one file or a folder, long or wide, renamed columns, local timezones
- ``incremental``: Append-only bar archive: a re-ingest adds new (timestamp, symbol) bars and never rewrites stored
  ones
- ``reader``: Read a bars file (.csv or .parquet) into canonical bars, refusing what cannot be read cleanly
- ``s3``: Bars and other files from S3 or an S3-compatible store (MinIO) via boto3's standard credential chain
- ``sources``: Sources of market data selected by name in params.yaml: bundled offline sets, files, S3, yfinance
- ``yahoo``: Optional yfinance source (``pip install tradepipe[yfinance]``); needs the network, so never used in
  tests
"""

__all__ = ["archive", "files", "incremental", "reader", "s3", "sources", "yahoo"]
