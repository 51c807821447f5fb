from blobstore.moto_s3 import moto_endpoint  # noqa: F401  (a fixture)
