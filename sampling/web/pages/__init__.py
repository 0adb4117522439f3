"""One module per page (or family of pages); each exports ``ROUTES`` and offers its
links with :func:`sampling.web.layer.link`. ``sampling.web.PAGES`` lists them."""
