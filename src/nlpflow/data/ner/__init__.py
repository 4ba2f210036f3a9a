"""Token-classification (named-entity) data: tag schemes (schemes), readers of the common file
formats into the internal frame (formats, with conll and span_files), and character spans
aligned to tokens (align). Pure code: no Prefect, no MLflow."""
