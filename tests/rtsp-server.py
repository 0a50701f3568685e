#!/usr/bin/python3
"""The test camera: Debian's GStreamer RTSP server with H.264 + AAC test streams.

Usage: rtsp-server.py PORT MOUNT [MOUNT...]
Serves rtsp://127.0.0.1:PORT/MOUNT for each mount: a moving test pattern (H.264, 1 s GOP at
15 fps) and a tone: AAC, or G.711 A-law (which MP4 cannot carry) on mounts whose name ends in
"pcma". Prints "ready" on stdout once it listens. Run it with /usr/bin/python3:
another python on PATH may lack the `gi` bindings.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

VIDEO = (
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=300 "
    "! rtph264pay name=pay0 pt=96 config-interval=1 "
)
AAC = (
    "audiotestsrc is-live=true wave=sine freq=440 ! audio/x-raw,rate=48000,channels=1 "
    "! voaacenc bitrate=32000 ! rtpmp4apay name=pay1 pt=97"
)
PCMA = (
    "audiotestsrc is-live=true wave=sine freq=440 ! audio/x-raw,rate=8000,channels=1 "
    "! alawenc ! rtppcmapay name=pay1 pt=8"
)


def main():
    port, mounts = sys.argv[1], sys.argv[2:]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    for m in mounts:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch("( " + VIDEO + (PCMA if m.endswith("pcma") else AAC) + " )")
        factory.set_shared(True)
        server.get_mount_points().add_factory("/" + m, factory)
    if server.attach(None) == 0:
        print("cannot listen on port", port, file=sys.stderr)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
