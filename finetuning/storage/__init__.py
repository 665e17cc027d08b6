"""Models, data and outputs in S3-compatible buckets (MinIO, GCS interop, AWS S3), addressed as ``s3://bucket/key``
wherever a config names a path. boto3 speaks the protocol (multipart transfers, retries, listing); this package
decides what is downloaded, cached, uploaded and when. Importing it does not import boto3."""

from finetuning.storage import bucket_inputs
from finetuning.storage.client import StorageError
from finetuning.storage.uri import InvalidUri, S3Uri, is_remote

__all__ = ["bucket_inputs", "InvalidUri", "S3Uri", "StorageError", "is_remote"]
