"""Python client for the tts-gateway streaming protocol (``/v1/stream``).

>>> async with connect("ws://127.0.0.1:8765/v1/stream", voice="jf_alpha") as stream:
...     stream.feed(["Hello ", "world."])
...     async for chunk in stream.iter_pcm():  # or: async for message in stream
...         ...

For scripts, :func:`tts_gateway_client.sync.speak` does it all in one blocking call.
"""

from tts_gateway_client.client import ClientError, PcmChunk, SpeechStream, connect
from tts_gateway_client.output import AudioCollector

__all__ = ["AudioCollector", "ClientError", "PcmChunk", "SpeechStream", "connect"]
