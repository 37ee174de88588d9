"""The demo, end to end: QuickBooks (the emulator), the admin web app, Dagster, all wired together.

``qb-pipelines demo`` (``make demo``) and ``qb-pipelines demo --headless`` call this package; the
webhook latency bench (:mod:`qb_pipelines.bench.webhook_latency`) reuses its pieces. It is plain
Python, so every step can be read, reused and tested apart from the command line:

1. **Secrets** (:mod:`~qb_pipelines.demo.secrets_file`): the Fernet key that encrypts tokens, the
   web app's session secret, the webhook verifier token and the demo admin's password are
   generated once and kept in ``<demo dir>/secrets.env`` (mode 600). The demo prints where they
   are, never their values (the admin password is printed once, when it is created, so the user
   can sign in). At each start the file also gets what a shell needs to talk to the demo (store
   URL, emulator, ``DAGSTER_HOME``, web URL): ``set -a; . .demo/secrets.env; set +a``.
2. **Store** (:mod:`~qb_pipelines.demo.connect`): the integration store and warehouse
   (``QB_DATABASE_URL=sqlite:///<demo dir>/qb_pipelines.sqlite``) are migrated, the admin user
   ``admin@example.com`` and the tenant ``demo`` created, and the demo company **connected** the
   way the OAuth callback connects one -- tokens, the connecting user (userinfo) and CompanyInfo,
   saved through ``ConnectionStore.save_tokens_on_connect`` -- but with tokens from the emulator's
   control route instead of a browser consent. Default settings are saved, so the tenant is
   "configured" (the Setup Wizard's job in the browser). That happens on a fresh store only: a
   restart keeps whatever connection the tenant has (switched, disconnected...) exactly as it is.
3. **Emulator wiring** (:func:`~qb_pipelines.demo.connect.register_with_emulator`): the web app's
   OAuth callback is registered as a redirect URI of the emulator's developer app (so Reconnect
   works from the web page), and the emulator's webhooks are subscribed to the web app's
   ``/webhooks/quickbooks`` (CloudEvents, signed with the verifier token, grouped over 1 s).
4. **Processes** (:mod:`qb_pipelines.devtools.services`): the emulator, the admin web app
   (``qb-pipelines web``), then Dagster -- ``dagster dev`` (UI + daemon) for the interactive demo
   (:mod:`~qb_pipelines.demo.ui`), ``dagster-daemon run`` for the headless one -- all with the same
   environment (:func:`~qb_pipelines.demo.secrets_file.demo_environment`) and ``DAGSTER_HOME``
   inside the demo folder (:mod:`~qb_pipelines.demo.instance`). Each is supervised: however the
   demo ends (done, failed, Ctrl-C, SIGTERM, a child dying first), every process it started, and
   every process those started, is stopped.

A change in QuickBooks then travels: emulator -> signed webhook -> web app -> webhook inbox ->
``qbo_webhook_sensor`` (in the daemon) -> incremental run (CDC) -> warehouse row.

The headless demo (:mod:`~qb_pipelines.demo.headless`) does all that in a fresh temporary folder
(:mod:`~qb_pipelines.demo.stack`), materializes every entity, every report month and every check
in-process against the same Dagster instance (:mod:`~qb_pipelines.demo.landing`), then proves the
webhook path with a customer created in QuickBooks (:mod:`~qb_pipelines.demo.warehouse`), and
returns 0 only when everything landed, every check passed and the change arrived through a
webhook-triggered run.
"""
