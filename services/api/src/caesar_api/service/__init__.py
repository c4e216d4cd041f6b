"""Use cases of the api: what a request or a message asks the service to do.

HTTP routes and message handlers parse their input, call one function here and render
its result; the functions take their repositories and storage as arguments (the ports
in :mod:`caesar_api.service.ports`), so unit tests run them against in-memory fakes.
"""
