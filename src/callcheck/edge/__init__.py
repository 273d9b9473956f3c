"""What the two HTTP edges (the JSON API and the pages) share: the services dependency and the session's context,
the request guards (middleware), reading a JSON body, and errors as `{"error": ...}`."""
