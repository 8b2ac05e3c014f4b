"""Who may do what: users and roles, passwords, sessions and API tokens, the Origin/Host policy,
the failed-login limit and the audit log. Usable without the web service (the CLI manages users)."""
