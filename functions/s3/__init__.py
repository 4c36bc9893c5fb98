"""The S3 door: `trigger.handler` crops each photo uploaded to the input bucket.

    trigger   the Lambda handler: one job per upload, its crops and records written
    events    S3, SQS-wrapped and EventBridge events turned into validated source objects
    batch     S3 Batch Operations tasks (backfills) and their answers
    outputs   the output layout, idempotency records, crop metadata and error records

Lambda runs `functions/s3/trigger.handler` (serverless.yml), for S3 notifications and the
regeneration queue alike.
"""
