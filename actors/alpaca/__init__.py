"""The Alpaca adapters: the broker, the bar feeds (REST and stream), order states, historical fetch.

Everything that speaks alpaca-py lives here, apart from the engine: ``broker`` (orders and positions,
``trade_updates`` for fills pushed by the stream, ``order_status`` for what each status means),
``feed`` (completed bars over REST), ``stream`` and ``stream_link`` (minute bars over the WebSocket),
``streaming_feed`` (the stream with REST back-fill), ``data`` (`tape data fetch` into the market-data
store) and ``http`` (timeouts and retries every client gets).
"""
