import keras


def test_keras3_is_available():
    assert int(keras.__version__.split(".")[0]) == 3
