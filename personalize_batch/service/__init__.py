"""Personalize's faces over the job: the control plane (`control`: create, describe,
list and wait for jobs, run by the background `worker`), the runtime calls (`runtime`:
GetRecommendations, GetPersonalizedRanking) and the boto3-shaped client (`sdk`)."""
