"""Load generators: a multi-process asyncio engine and an h2load engine."""
