"""Python client for the tts-gateway streaming protocol (``/v1/stream``).

>>> async with connect("ws://127.0.0.1:8765/v1/stream", voice="jf_alpha") as stream:
...     stream.feed(["Hello ", "world."])
...     async for message in stream:
...         ...
"""

from tts_gateway_client.client import ClientError, SpeechStream, connect
from tts_gateway_client.output import AudioCollector

__all__ = ["AudioCollector", "ClientError", "SpeechStream", "connect"]
