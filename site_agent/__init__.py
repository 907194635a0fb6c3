"""What both site agents (the sending hospital's and the trauma center's) share: the typed relay
client with its own errors, the site credential, the local state folder with one durable-write
helper, and retry with back-off. Imported by both agents; never by the relay."""
