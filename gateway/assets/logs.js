// placeholder: written by the page's change
