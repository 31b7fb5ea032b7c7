"""Email through Amazon SES (moto records what it sends, so tests read it back)."""

from __future__ import annotations

from functools import cache, cached_property

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from chalicelib.domain.storage import MailRefused

# SES or the network said no: the message was not taken. Anything else (a read timeout after
# sending) may have been taken: a sender that must never mail twice treats it as sent.
_REFUSED = (ClientError, EndpointConnectionError, ConnectTimeoutError)


class SesMailer:
    def __init__(self, sender: str, region: str) -> None:
        self._sender = sender
        self._region = region

    @cached_property
    def _client(self):
        import boto3
        from botocore.config import Config

        # No retries by the SDK: a retried send that SES had taken (a read timeout) would mail
        # twice. A refusal goes back to the queue, whose redelivery is the retry.
        return boto3.client("ses", region_name=self._region, config=Config(retries={"total_max_attempts": 1}))

    def send(self, to: str, subject: str, text: str) -> str:
        try:
            response = self._client.send_email(
                Source=self._sender,
                Destination={"ToAddresses": [to]},
                Message={
                    "Subject": {"Data": subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": text, "Charset": "UTF-8"}},
                },
            )
        except _REFUSED as error:
            raise MailRefused(f"SES did not take the message: {error}") from error
        return response["MessageId"]

    def send_marketing(self, to: str, subject: str, text: str, unsubscribe_url: str) -> str:
        """A marketing message with RFC 8058's one-click unsubscribe headers, which SendEmail
        cannot set: sent as a raw MIME message."""
        from email.message import EmailMessage

        message = EmailMessage(policy=_marketing_policy())
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(text, charset="utf-8", cte="quoted-printable")  # 7-bit clean
        try:
            response = self._client.send_raw_email(
                Source=self._sender, Destinations=[to], RawMessage={"Data": message.as_bytes()}
            )
        except _REFUSED as error:
            raise MailRefused(f"SES did not take the message: {error}") from error
        return response["MessageId"]


_UNFOLDED = frozenset({"list-unsubscribe"})


@cache
def _marketing_policy():
    """The SMTP policy, but List-Unsubscribe is never folded. The email package treats it as
    free text and, once a line is over 78 characters (any real unsubscribe URL), rewrites it
    as RFC 2047 encoded-words, which RFC 2369 does not allow there and mail clients do not
    decode: the one-click link would be lost. One line of ASCII is within RFC 5322's 998."""
    from email.policy import SMTP, EmailPolicy

    class MarketingPolicy(EmailPolicy):
        def fold(self, name, value):
            if name.lower() in _UNFOLDED and str(value).isascii():
                return f"{name}: {value}{self.linesep}"
            return super().fold(name, value)

        def fold_binary(self, name, value):
            if name.lower() in _UNFOLDED and str(value).isascii():
                return f"{name}: {value}{self.linesep}".encode("ascii")
            return super().fold_binary(name, value)

    return MarketingPolicy(linesep=SMTP.linesep)
