"""The YAML config: loading, validation and error messages.

The shape is a public contract::

    defaults:            # optional
      interval: 30s
      timeout: 10s
    jobs:
      - name: webcode-status
        plugin: http-status
        interval: 1m
        timeout: 5s
        options: {url: "http://webcode.me"}

Every problem found is reported, not just the first, each naming the file,
the line, the job and the field. ``${VAR}`` in string values is replaced by
the environment variable's value (``${VAR:-default}`` gives a default,
``$${`` a literal ``${``); substituted values are never echoed in errors and
are masked in logs.

One module per concept:

* :mod:`~runner.config.specs`: the YAML shape, as pydantic models;
* :mod:`~runner.config.source`: the YAML read with the line of every value;
* :mod:`~runner.config.env`: ``${VAR}`` expansion and the secrets it yields;
* :mod:`~runner.config.problems`: what is wrong, with file, line, job and field;
* :mod:`~runner.config.plugins`: the plugin or notifier an entry names;
* :mod:`~runner.config.loader`: the steps from a file to a :class:`Config`.
"""

from runner.config.loader import Config, load_config
from runner.config.problems import ConfigError, Problem
from runner.config.specs import (
    CHECK_ONLY,
    AuthSpec,
    Defaults,
    HistorySpec,
    HttpSpec,
    JobSpec,
    NotifierSpec,
    RetryDelay,
)

__all__ = [
    "CHECK_ONLY",
    "AuthSpec",
    "Config",
    "ConfigError",
    "Defaults",
    "HistorySpec",
    "HttpSpec",
    "JobSpec",
    "NotifierSpec",
    "Problem",
    "RetryDelay",
    "load_config",
]
