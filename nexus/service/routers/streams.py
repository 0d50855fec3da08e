"""``/streams``: live detection + tracking on rtsp/http(s) streams or files, and a WebSocket per stream.

Streams live in the memory of the service process that started them (see :mod:`nexus.service.live`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket, status
from starlette.websockets import WebSocketDisconnect, WebSocketState

from nexus.errors import NexusError
from nexus.service.audit import record
from nexus.service.dependencies import Session, Settings, requires, resolve_principal
from nexus.service.live import LiveStream, StreamManager
from nexus.service.permissions import allowed
from nexus.service.processing import check_model
from nexus.service.schemas.common import ERROR_RESPONSES, ErrorBody, IdPath, Limit, Offset, Page
from nexus.service.schemas.processing import StreamCreate, StreamOut

router = APIRouter(prefix="/streams", tags=["streams"], responses=ERROR_RESPONSES)
POLICY_VIOLATION = 1008
NOT_FOUND = 4404


def _manager(request: Request | WebSocket) -> StreamManager:
    return request.app.state.streams


def _found(request: Request, stream_id: int) -> LiveStream:
    stream = _manager(request).get(stream_id)
    if stream is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"stream {stream_id} not found")
    return stream


@router.post(
    "",
    response_model=StreamOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        422: {"model": ErrorBody, "description": "Bad source, model or options"},
        503: {"model": ErrorBody, "description": "The service runs several worker processes"},
    },
)
async def start_stream(
    request: Request,
    body: StreamCreate,
    session: Session,
    settings: Settings,
    caller: requires("streams:write"),
) -> dict:
    """Start reading a stream, detecting and tracking on every frame it delivers (newest frame first:
    a slow model skips frames rather than falling behind); a network stream reconnects with backoff.
    Watch it on ``WS /streams/{id}/ws``.
    """
    if settings.workers > 1:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"live streams are kept in one process's memory and this service runs {settings.workers} "
            "worker processes; serve streams from a single-worker service (nexus api --workers 1)",
        )
    manager = _manager(request)
    try:
        source = manager.check_source(body.source)
        model = check_model(settings, body.model)
    except NexusError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    if manager.active() >= settings.max_streams:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"{settings.max_streams} streams are running (NEXUS_API_MAX_STREAMS)"
        )
    stream = manager.start(body, source, model, caller.user_id)
    record(session, caller, "create", "stream", stream.id, None, {"source": source, "model": model})
    await session.commit()
    return stream.out()


@router.get("", response_model=Page[StreamOut])
async def list_streams(
    request: Request, caller: requires("streams:read"), limit: Limit = 50, offset: Offset = 0
) -> dict:
    """The streams of this service process, running and finished."""
    streams = _manager(request).list()
    items = [s.out() for s in streams[offset : offset + limit]]
    return {"items": items, "total": len(streams), "limit": limit, "offset": offset}


@router.get("/{stream_id}", response_model=StreamOut)
async def get_stream(stream_id: IdPath, request: Request, caller: requires("streams:read")) -> dict:
    """One stream and its counters."""
    return _found(request, stream_id).out()


@router.delete("/{stream_id}", response_model=StreamOut)
async def stop_stream(
    stream_id: IdPath, request: Request, session: Session, caller: requires("streams:write")
) -> dict:
    """Stop a stream (its WebSocket clients get a final ``end`` message) and forget it."""
    _found(request, stream_id)
    stream = await _manager(request).stop(stream_id)
    if stream is None:  # stopped by a concurrent request meanwhile
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"stream {stream_id} not found")
    record(session, caller, "delete", "stream", stream_id, {"source": stream.source}, None)
    await session.commit()
    return stream.out()


@router.websocket("/{stream_id}/ws")
async def stream_socket(
    websocket: WebSocket, stream_id: int, token: Annotated[str | None, Query(max_length=4096)] = None
) -> None:
    """One JSON message per processed frame: ``{"type": "frame", "frame", "timestamp_s", "detections":
    [{x1, y1, x2, y2, confidence, class_id, class_name, track_id}, ...]}``, then ``{"type": "end"}``.

    Authenticate with ``?token=<access token or API key>``, ``Authorization: Bearer`` or ``X-API-Key``;
    without valid credentials (or ``streams:read``) the socket is closed with code 1008 (policy
    violation); an unknown stream closes with 4404.
    """
    app = websocket.app
    header = websocket.headers.get("authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    try:
        async with app.state.sessionmaker() as session:
            caller = await resolve_principal(
                app.state.settings, session, token or bearer, websocket.headers.get("x-api-key")
            )
    except HTTPException:
        await websocket.close(POLICY_VIOLATION, "not authenticated")
        return
    if not allowed(caller.role, "streams:read", caller.scopes):
        await websocket.close(POLICY_VIOLATION, "requires permission streams:read")
        return
    manager = _manager(websocket)
    stream = manager.get(stream_id)
    if stream is None:
        await websocket.close(NOT_FOUND, f"stream {stream_id} not found")
        return
    await websocket.accept()
    queue = manager.subscribe(stream)
    receiver = asyncio.create_task(websocket.receive())
    getter: asyncio.Task[dict[str, Any]] | None = None
    try:
        while True:
            getter = getter or asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({receiver, getter}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                if receiver.result()["type"] == "websocket.disconnect":
                    return
                receiver = asyncio.create_task(websocket.receive())  # client messages are ignored
            if getter in done:
                message, getter = getter.result(), None
                await websocket.send_json(message)
                if message["type"] == "end":
                    await websocket.close(1000)
                    return
    except WebSocketDisconnect:
        return
    finally:
        manager.unsubscribe(stream, queue)
        for task in (receiver, getter):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                    await task
        connected = WebSocketState.CONNECTED
        if websocket.application_state == connected and websocket.client_state == connected:
            with contextlib.suppress(Exception):
                await websocket.close(1000)
