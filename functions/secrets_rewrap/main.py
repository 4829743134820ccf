"""secrets_rewrap: Cloud Scheduler target that moves sealed secrets to the primary KMS key version."""
import functions_framework

from shared.platform.entry import boot
from shared.platform.rewrap_job import api

boot("secrets_rewrap")


@functions_framework.http
def handle(request):
    return api(request)
