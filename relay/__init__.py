"""The trauma-relay relay: an aiohttp server that stores only ciphertext and never holds a key."""
