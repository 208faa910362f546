"""``seqae demo``: a local Gradio web app for the trained models under a runs folder.

One module per concern:

- :mod:`~seqae.demo.plugin`: registers the ``seqae demo`` command (works without gradio, so that
  the command can say which extra to install);
- :mod:`~seqae.demo.command`: the command's flags, checks and the server's start;
- :mod:`~seqae.demo.discovery`: the saved models under ``--runs``, by kind;
- :mod:`~seqae.demo.cache`: every model folder loaded once and shared by all sessions;
- :mod:`~seqae.demo.limits`: the upload and input limits the page states;
- :mod:`~seqae.demo.errors`: a user's mistake as one line in the page, never a traceback;
- :mod:`~seqae.demo.images`: digits, grids, mel spectrograms and moon phases as images;
- :mod:`~seqae.demo.app`: the ``gr.Blocks`` page, one tab per kind of model;
- the tabs: :mod:`~seqae.demo.vc` (voice conversion), :mod:`~seqae.demo.latent` (a VAE's
  latent space), :mod:`~seqae.demo.codes` (a VQ-VAE's codes; :mod:`~seqae.demo.digits` holds
  what these two share), :mod:`~seqae.demo.text` (summaries side by side) and
  :mod:`~seqae.demo.tree` (parsed trees drawn);
- :mod:`~seqae.demo.browser`: headless Chromium through selenium, for the browser tests and
  the README's screenshots.

Only :mod:`~seqae.demo.plugin` and :mod:`~seqae.demo.command` may be imported without gradio
(``pip install 'seqae[demo]'``).
"""
