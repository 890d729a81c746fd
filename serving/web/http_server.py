"""Runs an ASGI app with uvicorn on a thread of the model server, with start/stop like the gRPC server's."""

import asyncio
import socket
import threading

import uvicorn
from absl import logging

from serving.web.connections import ConnectionLimits


class HttpServer:
    """Serves `app` on (host, port); port 0 picks a free port. The socket is bound in `start`, so the port opens
    only when the server starts; `stop(grace)` stops accepting, lets requests in flight finish for up to `grace`
    seconds, and closes the port."""

    def __init__(self, host, port, app, limits=None):
        self._host, self._requested_port, self._app = host, port, app
        self._limits = limits or ConnectionLimits()
        self._socket = None
        self._server = None
        self._thread = None
        self.port = None

    def start(self, grace_seconds=30.0):
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without
        # it every small answer (headers and body in two writes) waited ~40 ms for the client's delayed ACK.
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((self._host, self._requested_port))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=grace_seconds,
            http=self._limits.protocol(),
            timeout_keep_alive=self._limits.idle_timeout_seconds,
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="http-server", daemon=True)
        self._thread.start()
        if not started.wait(60) or not self._server.started:
            raise OSError(f"the HTTP server did not start on {self._host}:{self.port}")

    def _run(self, started):
        async def serve():
            task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
            while not self._server.started and not task.done():
                await asyncio.sleep(0.01)
            started.set()
            await task

        try:
            asyncio.run(serve())
        except Exception:  # noqa: BLE001 - logged; start() reports that it did not start
            logging.exception("HTTP server failed")
        finally:
            started.set()

    def stop(self, grace):
        if self._server is None:
            return
        self._server.config.timeout_graceful_shutdown = grace
        self._server.should_exit = True
        self._thread.join(grace + 5)
        self._socket.close()
