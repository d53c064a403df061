"""The editors' preview: every language's post, drawn as its platform shows it, before merging.

- :mod:`bot.preview.model`: pure — content, plan and variants → what the pages show (the
  calendar of each account in its own zone, a card per variant per account, drafts and held
  posts apart, the problems of each post with their ``file:line``);
- :mod:`bot.preview.render`: that model → a static site (Jinja2 templates, autoescaped: post
  text is untrusted input), one ``index.html`` and one page per post, CSS inline, images
  copied beside the pages; it opens from ``file://`` with nothing fetched from elsewhere;
- :mod:`bot.preview.site`: the stages run for ``diplobot preview`` and the service's
  ``/preview`` (load → plan → localize → model → pages), a translation outage shown as
  "awaiting translation" rather than failing.
"""
