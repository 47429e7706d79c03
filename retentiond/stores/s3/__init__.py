"""S3 stores through boto3: versions, delete markers, Object Lock."""
