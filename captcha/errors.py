"""Errors a user can act on. Front ends catch `CaptchaError` and show its message; anything else is a bug."""


class CaptchaError(Exception):
    """Base class: the message says what is wrong and what to do."""


class SpecError(CaptchaError, ValueError):
    """An alphabet, length or input size that cannot describe a CAPTCHA."""


class LabelError(CaptchaError, ValueError):
    """A label that is not `length` characters of the alphabet."""


class ImageError(CaptchaError, ValueError):
    """Bytes or a file that cannot be read as an image we are willing to decode."""


class WeightsError(CaptchaError):
    """A weights file that is missing, truncated, foreign or does not match what it claims."""


class DatasetError(CaptchaError):
    """A dataset folder that cannot be used as it is."""
