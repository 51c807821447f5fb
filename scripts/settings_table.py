"""Prints the configuration table of every service (the README's table is made from it)."""

from __future__ import annotations

from services.catalog.config import CatalogConfig
from services.common.config import settings_table
from services.preprocess.config import PreprocessConfig
from services.upload.config import UploadConfig

ALL_CONFIGS = (CatalogConfig, UploadConfig, PreprocessConfig)

if __name__ == "__main__":
    print(settings_table(*ALL_CONFIGS))
