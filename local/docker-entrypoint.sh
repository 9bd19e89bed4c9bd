#!/bin/sh
# Entrypoint of the Ordinaut image: one image, several ways to start it.
#
#   functions.<name>.handler.handler   AWS Lambda (image_config.command): the runtime interface
#                                      client loads that handler and serves invocations
#   ordinaut ARGS...                   the ordinaut CLI, ARGS as given
#   python|sh|bash ARGS...             that program (debugging: `docker run -it IMAGE sh`)
#   anything else                      arguments of the ordinaut CLI: api, scheduler, worker,
#                                      migrate, agents create --admin, ...
#   nothing                            ordinaut api
set -eu

if [ "$#" -eq 0 ]; then
    set -- api
fi

case "$1" in
    functions.*)
        exec python -m awslambdaric "$@"
        ;;
    ordinaut)
        shift
        exec ordinaut "$@"
        ;;
    python | python3 | sh | bash)
        exec "$@"
        ;;
    *)
        exec ordinaut "$@"
        ;;
esac
