"""PreprocessService over gRPC: reports what the worker is doing."""

from __future__ import annotations

import grpc

from corral.preprocess.v1 import preprocess_service_pb2 as pb
from corral.preprocess.v1 import preprocess_service_pb2_grpc as pb_grpc
from services.common.auth import Need
from services.preprocess.worker import Worker

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PreprocessService"].full_name
NEEDS = {f"/{SERVICE_NAME}/GetStats": Need.READ}


class PreprocessServicer(pb_grpc.PreprocessServiceServicer):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def GetStats(self, request: pb.GetStatsRequest,
                       context: grpc.aio.ServicerContext) -> pb.GetStatsResponse:
        stats = await self.worker.stats()
        return pb.GetStatsResponse(
            processed=stats.processed, failed=stats.failed, skipped=stats.skipped,
            in_flight=stats.in_flight, lag=stats.lag, committed_cursor=stats.committed_cursor,
            subscribed=stats.subscribed, pool_processes=stats.pool_processes,
            consumer_group=self.worker.consumer_group, dataset_id=self.worker.dataset_id)
