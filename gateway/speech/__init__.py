"""The speaking pipeline: the one place where a segment of a session becomes backend calls and
the audio they return becomes timed frames on the session's timeline.

- :mod:`~gateway.speech.chunking`: how much text each backend call takes, and when it is due;
- :mod:`~gateway.speech.synthesis`: one backend call at the stream's rate, guarded (timeout,
  audio check) and accounted (cost, the model's time), and the fallback wrapper around those;
- :mod:`~gateway.speech.words`: word timings, native or estimated, and their refits;
- :mod:`~gateway.speech.delivery`: encoding, pacing and sending frames to a sink;
- :mod:`~gateway.speech.speaker`: the orchestrator of one session;
- :mod:`~gateway.speech.services`: what the sessions of one process share (timing models,
  model shares, encoder threads, prices), and the factory of speakers.

Nothing here knows about sockets or HTTP: a send function, a sink and a clock are passed in.
"""
