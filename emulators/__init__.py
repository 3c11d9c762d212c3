"""Local emulators of Microsoft Entra ID and Azure Communication Services. TEST ONLY.

Nothing here imports `service`; the broker imports this package only from its
`dev` and `emulate` commands, lazily.
"""
