"""Prints the configuration table of every service (the README's table is made from it)."""

from __future__ import annotations

from services.catalog.config import CatalogConfig
from services.common.config import settings_table
from services.preprocess.config import PreprocessConfig
from services.upload.config import UploadConfig

CONFIGS = {"catalog": CatalogConfig, "upload": UploadConfig, "preprocess": PreprocessConfig}
ALL_CONFIGS = tuple(CONFIGS.values())

if __name__ == "__main__":
    print(settings_table(CONFIGS))
