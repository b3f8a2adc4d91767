"""Functions a Python app-net peer serves to the Rust tests (tests/appnet.rs).

app-net 0.6 tags a function without a custom tag as `module.name`, so these answer to
`app.multiply`, `app.echo`, ... and `tagged` to its custom tag `MyTaggedFunction`.
"""
import appnet_loopback  # noqa: F401  (confines app-net before it starts)
import net


@net.connect()
def multiply(a, b):
    return a * b


@net.connect()
def echo(value):
    return value


@net.connect()
def greet(name, punctuation="!"):
    return "hello " + name + punctuation


@net.connect()
def divide(a, b):
    return a / b


@net.connect()
def nothing():
    return None


@net.connect()
def big(n):
    return "x" * n


@net.connect("MyTaggedFunction")
def tagged(x):
    return {"tagged": x}
